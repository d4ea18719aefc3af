"""The teacher as a function: libvmaf's JSON models (nu-SVR) evaluated in float64 NumPy, and their specs."""

from .spec import FeatureSpec, TeacherSpec, UnsafeFilterPath, load_spec
from .svr import SvrTeacher, TeacherModelError, load_teacher, packaged_models, same_svr

__all__ = [
    "FeatureSpec",
    "SvrTeacher",
    "TeacherModelError",
    "TeacherSpec",
    "UnsafeFilterPath",
    "load_spec",
    "load_teacher",
    "packaged_models",
    "same_svr",
]
