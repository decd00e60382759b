"""Config-driven knowledge distillation: distiller, taps, connectors, schedules, hooks, losses."""
from . import ka  # noqa: F401  (knowledge adaptation: stage-1 model, connectors)
from . import losses  # noqa: F401
from .connectors import (ConnectorChain, Conv3x3ReLUConnector, ConvBNConnector, ResizeConnector,
                         build_connector)
from .distiller import Distiller
from .export import extract_student, student_state_dict
from .hooks import StudentCheckpointHook
from .online import CohortDistiller
from .optim import CohortOptimWrapperConstructor, DistillOptimWrapperConstructor
from .schedules import LossSchedule, build_schedule
from .taps import TapSet, TapSpec, resolve_module
from .wrapper import DistillerDataParallel

__all__ = [
    'ConnectorChain', 'Conv3x3ReLUConnector', 'ConvBNConnector', 'ResizeConnector',
    'build_connector', 'Distiller', 'extract_student', 'student_state_dict',
    'StudentCheckpointHook', 'CohortDistiller', 'CohortOptimWrapperConstructor',
    'DistillOptimWrapperConstructor', 'LossSchedule', 'build_schedule', 'TapSet', 'TapSpec',
    'resolve_module', 'DistillerDataParallel'
]
