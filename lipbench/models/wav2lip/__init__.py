"""Wav2Lip (Rudrabha/Wav2Lip): the generator and adapter (`adapter`), its S3FD face boxes
(`detect`), its mel spectrogram (`mel`) and its weight files (`weights`)."""
