"""`xapi.storage`: the SMAPIv3 bindings (`xapi.storage.api.v5`) and the helpers plugins import (`log`,
`common`)."""
