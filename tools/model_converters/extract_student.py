"""Extract the student from a Distiller checkpoint.

    python tools/model_converters/extract_student.py work_dirs/x/iter_2000.pth student.pth

The output holds ``{'state_dict', 'meta'}`` with the plain student's keys (connectors,
discriminators, optimizer state and the teacher - never saved anyway - are left out), so
``mim test mmseg <student config> --checkpoint student.pth`` evaluates it. For a cohort
(``CohortDistiller``, online distillation) name the member: ``... --member a``.
"""
import argparse
import os.path as osp
import sys


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Extract a student-only checkpoint')
    parser.add_argument('checkpoint', help='distiller checkpoint (local path or URL)')
    parser.add_argument('out', help='output checkpoint path')
    parser.add_argument(
        '--member',
        default=None,
        help='CohortDistiller checkpoint (online distillation): the member to '
        'export, by name')
    args = parser.parse_args(argv)
    from rtkd.distill.export import _tensor_bytes, extract_student
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        sys.exit(f'checkpoint not found: {osp.abspath(args.checkpoint)!r} does not exist.')
    out = extract_student(args.checkpoint, args.out, member=args.member)
    sd = out['state_dict']
    print(f'wrote {args.out}: {len(sd)} tensors, {_tensor_bytes(sd) / 2**20:.2f} MiB')


if __name__ == '__main__':
    main()
