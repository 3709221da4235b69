"""Sample from a trained GPT: python sample.py --out_dir=out/<run> [--prompt=...]

A thin command line over model.infer.sampler; `tinygpt sample` is the same thing.
"""
import sys

from model.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
