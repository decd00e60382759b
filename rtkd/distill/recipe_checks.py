"""Which training settings a distillation recipe really uses, compared with its student's config.

A recipe inherits its optimizer, schedule and data settings from its ``_base_`` (usually the
student config it was written for). Swapping only ``model.student`` (``model =
dict(student='configs/espnet/...')`` in a child recipe) therefore keeps the *old* student's
optimizer silently: ESPNet trained with ContextNet's RMSprop. :func:`compare_recipe_settings`
lists, for the settings that decide a training (the student's optimizer, its parameter
schedule, the train loop and the train data), the values the run uses and those of the config
named by ``model.student``; :func:`log_recipe_settings` logs them at the start of training
(INFO when they agree, one WARNING naming every differing key and how to take the student's
settings when they do not); :func:`apply_student_settings` takes the student's settings
(``tools/train.py RECIPE --student-settings``).

Compared (dotted keys):

* ``optim_wrapper`` without ``constructor``; for a recipe with several optimizers
  (``DistillOptimWrapperConstructor``: ``optim_wrapper = dict(student=..., discriminator=...)``)
  its ``student`` entry;
* ``param_scheduler`` (its ``student`` entry when it is keyed by optimizer);
* ``train_cfg``;
* ``train_dataloader``, except where the data lives and how it is read (``data_root``,
  ``data_prefix``, ``num_workers``, ``persistent_workers``, ``pin_memory``,
  ``prefetch_factor``): command-line data options do not count as a difference.

Only ``type='Distiller'`` recipes whose ``student`` names a config file are compared (a model
dict has no settings of its own; ``CohortDistiller`` members each bring their own optimizer
entry).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

#: settings compared, in the order they are reported
SETTING_KEYS = ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader')

#: train_dataloader entries that say where the data is / how it is read, not how it trains
DATA_LOCATION_KEYS = frozenset({
    'data_root', 'data_prefix', 'num_workers', 'persistent_workers', 'pin_memory', 'prefetch_factor'
})

#: optim_wrapper constructors whose config holds one entry per optimizer
KEYED_CONSTRUCTORS = ('DistillOptimWrapperConstructor', 'CohortOptimWrapperConstructor')

__all__ = [
    'SETTING_KEYS', 'compare_recipe_settings', 'log_recipe_settings', 'apply_student_settings',
    'format_value'
]


def _plain(value: Any) -> Any:
    """ConfigDicts / tuples as plain dicts / lists (so equal settings compare equal)."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _flatten(value: Any, prefix: str, out: Dict[str, Any]) -> Dict[str, Any]:
    """Dotted keys -> leaf values (list items as ``key.<i>``)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f'{prefix}.{k}', out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _flatten(v, f'{prefix}.{i}', out)
    else:
        out[prefix] = value
    return out


def _is_keyed(optim_wrapper: Optional[dict]) -> bool:
    return bool(optim_wrapper) and str(optim_wrapper.get('constructor', '')) in KEYED_CONSTRUCTORS


def _student_part(cfg: Config, key: str, keyed: bool) -> Any:
    """The part of setting ``key`` that trains the student."""
    value = _plain(cfg.get(key))
    if key == 'optim_wrapper' and isinstance(value, dict):
        if keyed:
            value = value.get('student')
        else:
            value = {k: v for k, v in value.items() if k != 'constructor'}
    elif key == 'param_scheduler' and keyed and isinstance(value, dict):
        value = value.get('student')
    elif key == 'train_dataloader' and isinstance(value, dict):
        value = _drop_location(value)
    return value


def _drop_location(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_location(v) for k, v in value.items() if k not in DATA_LOCATION_KEYS}
    if isinstance(value, list):
        return [_drop_location(v) for v in value]
    return value


def format_value(value: Any, limit: int = 60) -> str:
    """A short repr for a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _student_source(cfg: Config) -> Optional[Tuple[str, Config]]:
    """``(name, student config)`` for a Distiller whose student is a config file, else None."""
    from rtkd.apis import normalize_spec, student_config
    model = cfg.get('model') or {}
    if model.get('type') != 'Distiller' or model.get('student') is None:
        return None
    spec = normalize_spec(model['student'], 'model.student')
    if 'config' not in spec:
        return None
    return str(spec['config']), student_config(cfg)


def compare_recipe_settings(cfg: Config) -> Optional[dict]:
    """Compare the training settings of a recipe with those of the config named by its student.

    Args:
        cfg (Config): the full (merged) training config of the run.

    Returns:
        dict or None: None when ``cfg`` is not a ``Distiller`` recipe with a student config;
        else ``dict(student=<config name>, keyed=<bool>, used={key: value},
        student_settings={key: value}, differ=[(dotted key, recipe value, student value)])``.
    """
    found = _student_source(cfg)
    if found is None:
        return None
    name, scfg = found
    keyed = _is_keyed(cfg.get('optim_wrapper'))
    used, theirs, differ = {}, {}, []
    for key in SETTING_KEYS:
        mine = _student_part(cfg, key, keyed)
        other = _student_part(scfg, key, False)
        used[key], theirs[key] = mine, other
        flat_mine, flat_other = _flatten(mine, key, {}), _flatten(other, key, {})
        for dotted in list(dict.fromkeys(list(flat_mine) + list(flat_other))):
            a, b = flat_mine.get(dotted, '<unset>'), flat_other.get(dotted, '<unset>')
            if a != b:
                differ.append((dotted, a, b))
    return dict(student=name, keyed=keyed, used=used, student_settings=theirs, differ=differ)


def _summary(used: dict) -> str:
    """One phrase per setting: optimizer, schedule, iterations, batch size."""
    ow = used.get('optim_wrapper') or {}
    opt = ow.get('optimizer') or {}
    opt_text = ', '.join(f'{k}={v}' for k, v in opt.items() if k != 'type')
    sched = used.get('param_scheduler')
    scheds = sched if isinstance(sched, list) else ([sched] if sched else [])
    sched_text = ', '.join(str((s or {}).get('type')) for s in scheds) or 'none'
    loop = used.get('train_cfg') or {}
    loop_text = ', '.join(f'{k}={v}' for k, v in loop.items() if k != 'type')
    data = used.get('train_dataloader') or {}
    return (f"optimizer {opt.get('type')}({opt_text}), param_scheduler [{sched_text}], "
            f"train_cfg({loop_text}), train_dataloader batch_size={data.get('batch_size')}")


def _grouped_keys(differ: List[tuple]) -> List[str]:
    """``optim_wrapper.optimizer.{type, lr}``-style names of the differing dotted keys."""
    groups: Dict[str, List[str]] = {}
    for dotted, _, _ in differ:
        parts = dotted.split('.')
        depth = 2 if len(parts) > 2 and not parts[1].isdigit() else 1
        head = '.'.join(parts[:depth])
        rest = '.'.join(p for p in parts[depth:] if not p.isdigit())
        names = groups.setdefault(head, [])
        if rest and rest not in names:
            names.append(rest)
    out = []
    for head, names in groups.items():
        if not names:
            out.append(head)
        elif len(names) == 1:
            out.append(f'{head}.{names[0]}')
        else:
            out.append(f'{head}.{{{", ".join(names)}}}')
    return out


def recipe_settings_message(report: dict) -> Tuple[bool, str]:
    """``(equal, message)`` for a :func:`compare_recipe_settings` report.

    Args:
        report (dict): what :func:`compare_recipe_settings` returned.

    Returns:
        tuple[bool, str]: whether the settings agree, and the log line.
    """
    used = _summary(report['used'])
    if not report['differ']:
        return True, (f"recipe settings: {used} - the same as the student config's own "
                      f"({report['student']}).")
    keys = sorted({d[0].split('.')[0] for d in report['differ']})
    where = ("optim_wrapper.student / param_scheduler.student"
             if report['keyed'] else ', '.join(keys))
    return False, (
        f"recipe settings differ from the student config's own ({report['student']}): this run "
        f"trains with {used}; the student config has {_summary(report['student_settings'])}. "
        f"Differing keys: {', '.join(_grouped_keys(report['differ']))} - they come from the "
        f"recipe's _base_, not from model.student. To train with the student's settings run "
        f"`python tools/train.py RECIPE --student-settings`, or set {where} in the recipe "
        f"(e.g. optim_wrapper = dict(_delete_=True, ...)), or make the student config the "
        f"recipe's first _base_; to keep the recipe's settings, nothing to do.")


def log_recipe_settings(cfg: Config, logger=None) -> Optional[dict]:
    """Log (INFO or WARNING) which settings a distillation run uses; see the module docstring.

    Args:
        cfg (Config): the run's config.
        logger (MMLogger, optional): defaults to the current mmengine logger.

    Returns:
        dict or None: the report of :func:`compare_recipe_settings`.
    """
    import logging

    from mmengine.logging import MMLogger, print_log
    logger = logger or MMLogger.get_current_instance()
    try:
        report = compare_recipe_settings(cfg)
    except Exception as err:  # the Distiller itself already built from this config
        print_log(
            f'recipe settings: could not compare with the student config ({err}).',
            logger=logger,
            level=logging.WARNING)
        return None
    if report is None:
        return None
    equal, message = recipe_settings_message(report)
    print_log(message, logger=logger, level=logging.INFO if equal else logging.WARNING)
    return report


def apply_student_settings(cfg: Config) -> List[str]:
    """Replace the recipe's student settings by those of the config named by ``model.student``.

    ``optim_wrapper`` (its ``student`` entry for a keyed constructor, the recipe's
    ``constructor`` kept otherwise), ``param_scheduler`` (its ``student`` entry when keyed),
    ``train_cfg`` and the training part of ``train_dataloader`` (the recipe's data location
    and reading options stay).

    Args:
        cfg (Config): a distillation recipe, changed in place.

    Returns:
        list[str]: the keys that changed.

    Raises:
        ValueError: ``cfg`` is not a Distiller recipe whose student is a config file.
    """
    found = _student_source(cfg)
    if found is None:
        raise ValueError('--student-settings needs a Distiller recipe whose model.student is a '
                         'config file; this config has none, so set its optimizer and schedule '
                         'directly.')
    report = compare_recipe_settings(cfg)
    _, scfg = found
    changed = sorted({d[0].split('.')[0] for d in report['differ']})
    keyed = report['keyed']
    for key in changed:
        theirs = copy.deepcopy(scfg.get(key))
        if key == 'optim_wrapper':
            if keyed:
                cfg.optim_wrapper['student'] = theirs
            else:
                ctor = cfg.optim_wrapper.get('constructor')
                cfg.optim_wrapper = theirs
                if ctor is not None:
                    cfg.optim_wrapper['constructor'] = ctor
        elif key == 'param_scheduler' and keyed and isinstance(cfg.get(key), dict):
            cfg.param_scheduler['student'] = theirs
        elif key == 'train_dataloader':
            mine = cfg.train_dataloader
            new = copy.deepcopy(theirs)
            _keep_location(mine, new)
            cfg.train_dataloader = new
        else:
            cfg[key] = theirs
    return changed


def _keep_location(mine: Any, new: Any) -> None:
    """Copy the data location / reading keys of ``mine`` into ``new`` (same nesting)."""
    if isinstance(mine, dict) and isinstance(new, dict):
        for k, v in mine.items():
            if k in DATA_LOCATION_KEYS:
                new[k] = copy.deepcopy(v)
            elif k in new:
                _keep_location(v, new[k])
