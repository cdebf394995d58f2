"""Wav2Lip's weight files: registered in lipbench.weights (PACKAGE_WEIGHTS)."""

from lipbench.weight_file import WeightFile

WEIGHT_FILES = (
    WeightFile(
        "wav2lip.pth",
        "Wav2Lip generator ({'state_dict': ...})",
        ("wav2lip",),
        "Rudrabha/Wav2Lip README (Google Drive folder 153HLrqlBNxzZcHi17PEvP09kkAfzRshM)",
        manual="no direct link: download wav2lip.pth from the Wav2Lip README's Google Drive link "
        "(https://drive.google.com/drive/folders/153HLrqlBNxzZcHi17PEvP09kkAfzRshM) into the "
        "weights directory",
        loader="lipbench.models.wav2lip.adapter:load_generator",
    ),
    WeightFile(
        "wav2lip_gan.pth",
        "Wav2Lip + GAN generator ({'state_dict': ...})",
        ("wav2lip",),
        "Rudrabha/Wav2Lip README (Google Drive file 15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk)",
        manual="no direct link: download wav2lip_gan.pth from https://drive.google.com/file/d/"
        "15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk into the weights directory",
        loader="lipbench.models.wav2lip.adapter:load_generator",
    ),
    WeightFile(
        "s3fd.pth",
        "Wav2Lip's S3FD face detector (face-alignment s3fd-619a316812.pth, state_dict)",
        ("wav2lip",),
        "Rudrabha/Wav2Lip README -> face_detection/detection/sfd/s3fd.pth",
        url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
        loader="lipbench.models.wav2lip.detect:load_s3fd",
    ),
)
