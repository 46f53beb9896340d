"""fairseq-lrn: the Lightweight Recurrent Network (LRN) for fairseq."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="fairseq-lrn",
    version="0.1.0",
    description="Lightweight Recurrent Network (Zhang & Sennrich, ACL 2019) for fairseq, "
                "with a fused Triton kernel",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["fairseq_lrn", "fairseq_lrn.*"]),
    # compiled on first use (fairseq_lrn/translate/candidates.py)
    package_data={"fairseq_lrn.translate.native": ["*.cpp"]},
    install_requires=[
        "torch>=2.6",  # the safe checkpoint loader (fairseq_compat.checkpoint_loading) needs it
        # fairseq 0.12.2 cannot be imported on Python >= 3.11; fairseq-fixed is the same module, patched.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "sacrebleu>=2.0",
        "sentencepiece",
        "subword-nmt",
        "sacremoses",
        "tqdm",
    ],
    extras_require={
        "test": ["pytest", "triton", "matplotlib", "ctranslate2"],
        "plot": ["matplotlib"],
        # scripts/benchmark_decoding.py: CTranslate2 (never imported by the package itself), the --plot PNGs
        "bench": ["ctranslate2", "matplotlib"],
    },
    entry_points={"console_scripts": ["fairseq-lrn-dir = fairseq_lrn.tools:print_user_dir",
                                      "fairseq-lrn-translate = fairseq_lrn.translate.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
