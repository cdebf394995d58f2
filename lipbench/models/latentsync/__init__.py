"""LatentSync 1.6 (bytedance/LatentSync a229c39), run in its own environment through
lipbench's worker protocol: `adapter.LatentSync` (lipbench's side), `worker_model`
(the side inside LatentSync's environment), `env` (builds that environment), `weights`."""
