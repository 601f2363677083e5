"""Per-shot work, in rooms cut by what they depend on.

- :mod:`tasks.records`: what the others exchange (records, compiled shots, the lifecycle, failures);
- :mod:`tasks.engine`: compiling and running shots on the devices (no Prefect, no zarr);
- :mod:`tasks.prefect_tasks`: the Prefect tasks wrapping the engine's batches;
- :mod:`tasks.store`: the zarr results store and its readers.
"""
