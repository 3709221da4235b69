"""Train a GPT: python train.py [configs/<recipe>.toml] [--key=value ...]

A thin command line over model.train.trainer; `tinygpt train` is the same thing.
"""
import sys

from model.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
