"""The teacher as a function: libvmaf's JSON models (nu-SVR) evaluated in float64 NumPy, and their specs."""

from .bootstrap import BootstrapTeacher, load_bootstrap
from .spec import FeatureSpec, TeacherSpec, UnsafeFilterPath, load_spec
from .svr import SvrTeacher, TeacherModelError, load_teacher, packaged_models, same_svr

__all__ = [
    "BootstrapTeacher",
    "FeatureSpec",
    "SvrTeacher",
    "TeacherModelError",
    "TeacherSpec",
    "UnsafeFilterPath",
    "load_bootstrap",
    "load_spec",
    "load_teacher",
    "packaged_models",
    "same_svr",
]
