"""Rewrite a *trusted* mmengine checkpoint so torch's safe loader (``weights_only=True``) accepts
it.

Checkpoints written by mmengine without rtkd imported pickle ``getattr(HistoryBuffer, ...)`` in
their message hub, which torch >= 2.6 refuses by default. This tool loads such a file with the
full unpickler (only do this for files you trust) and saves it again through rtkd's patched
HistoryBuffer, which leaves the method registry out.

    python tools/model_converters/make_safe_checkpoint.py IN.pth OUT.pth
"""
import argparse

import torch

import rtkd  # noqa: F401  (patches HistoryBuffer pickling)
from rtkd.utils import check_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='trusted checkpoint to rewrite')
    parser.add_argument('dst', help='output path')
    args = parser.parse_args()
    ckpt = torch.load(check_file(args.src, 'checkpoint'), map_location='cpu', weights_only=False)
    torch.save(ckpt, args.dst)
    torch.load(args.dst, map_location='cpu', weights_only=True)  # verify
    print(f'wrote {args.dst} (loads with weights_only=True)')


if __name__ == '__main__':
    main()
