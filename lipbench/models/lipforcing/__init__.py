"""The Lip Forcing family (T-64/LipForcing, issue 12), written in lipbench.

This package holds, one file each: the Wan2.1 DiT networks (causal students and
bidirectional teachers), the Wan2.1 VAE, the TAEHV tiny decoder (`taehv`), the
rectified-flow sampler, face alignment and compositing, the adapters
(`lipforcing`, `self_forcing`, `omniavatar_ls`) and the weight files (`weights`). Nothing here imports mediapipe at
module level, so the GPU path loads on machines without it.
"""
