"""SMAPIv3 bindings, version 5 of the IDL (what xapi-storage-script calls `required_api_version` 5.0).

One module per IDL file, holding the same classes xen-api generates: `plugin` (Plugin), `volume` (SR, Volume),
`datapath` (Datapath, Data), `task` (Task). Each interface `X` has `X_server_dispatcher`, `X_skeleton`,
`X_test` and `X_commandline`; each module has `<module>_server_dispatcher` and its IDL error classes.
"""
