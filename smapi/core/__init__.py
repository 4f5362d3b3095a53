"""The core: what turns a named call into a driver's implementation, whatever the transport.

* `smapi.core.driver`: the `Driver` base class and the registry that finds a driver by name or reference;
  `driver.dispatcher(api)` and `driver.call(api, verb, **args)` are the one way to call a driver.
* `smapi.core.dispatcher`: checks a call against the API definition, runs it, checks the result, turns any
  failure into a typed SMAPI error and writes the call's line to the call log.
* `smapi.core.v3_adapter`: SMAPIv3 served on top of a driver's storage-interface verbs.

Layering: the core imports only `smapi.common` and `smapi.interface`. Transports (`smapi.rpc`), the engine
(`smapi.sr`), drivers, transfer and the CLI stand on it. Nothing is imported here, so that a per-verb
executable pays only for the modules it uses.
"""
