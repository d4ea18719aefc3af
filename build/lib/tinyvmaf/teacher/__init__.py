"""The teacher as a function: libvmaf's JSON models (nu-SVR) evaluated in float64 NumPy."""

from .svr import SvrTeacher, TeacherModelError, load_teacher, packaged_models, same_svr

__all__ = ["SvrTeacher", "TeacherModelError", "load_teacher", "packaged_models", "same_svr"]
