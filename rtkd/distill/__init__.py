"""Config-driven knowledge distillation: distiller, taps, connectors, schedules, hooks, losses."""
from . import losses  # noqa: F401
from .connectors import (ConnectorChain, Conv3x3ReLUConnector, ConvBNConnector,  # noqa: F401
                         ResizeConnector, build_connector)
from .distiller import Distiller  # noqa: F401
from .export import extract_student, student_state_dict  # noqa: F401
from .hooks import StudentCheckpointHook  # noqa: F401
from . import ka  # noqa: F401  (knowledge adaptation: stage-1 model, connectors)
from .optim import DistillOptimWrapperConstructor  # noqa: F401
from .optim import CohortOptimWrapperConstructor  # noqa: F401
from .schedules import LossSchedule, build_schedule  # noqa: F401
from .taps import TapSet, TapSpec, resolve_module  # noqa: F401
from .wrapper import DistillerDataParallel  # noqa: F401
from .online import CohortDistiller  # noqa: F401
