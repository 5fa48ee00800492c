"""Installing keras-augtune never replaces the user's TensorFlow (issue 23, item 1).

``tensorflow``, ``tensorflow-cpu``, ``tensorflow-macos``, ... are separate distributions that
all write the same ``tensorflow/`` package: requiring any one of them unconditionally makes pip
install it over whichever the user has (a CUDA ``tensorflow`` became CPU-only when the package
required ``tensorflow-cpu`` on x86_64). So only the backend extras (``[tensorflow]``, ``[gpu]``,
``[tensorflow-cpu]``) may name one, and no other extra may pull them in (``pip install
'.[test]'`` in a GPU environment must keep its TensorFlow). Checked on the installed package's
metadata (what pip sees) and on ``pyproject.toml`` (what the next install will see), for the
platforms TensorFlow ships wheels for.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import tomllib

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
SELF = "keras-augtune"
#: distributions that install the ``tensorflow`` import package
TENSORFLOW_DISTRIBUTIONS = {
    "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
    "tensorflow-cpu-aws", "tensorflow-aarch64", "tensorflow-rocm", "intel-tensorflow", "tf-nightly",
    "tf-nightly-cpu", "tf-nightly-gpu",
}
#: the extras whose whole point is to install a TensorFlow
BACKEND_EXTRAS = {"tensorflow", "gpu", "tensorflow-cpu"}
ENVIRONMENTS = [
    {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"},
    {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix"},
    {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
    {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
]

#: the spec of keras-augtune 0.1.0 before this fix (the CUDA `tensorflow` was replaced)
OLD_SPEC = [
    "keras>=3",
    'tensorflow-cpu>=2.16; platform_machine == "x86_64" or platform_machine == "AMD64"',
    'tensorflow>=2.16; platform_machine != "x86_64" and platform_machine != "AMD64"',
    'pytest>=7; extra == "test"',
]


def _applies(requirement: Requirement, environment: dict, extra: str) -> bool:
    marker = requirement.marker or Marker("python_version >= '3'")
    return marker.evaluate(dict(environment, extra=extra))


def _installed_names(requirements: list[str], environment: dict, extras: set[str]) -> set[str]:
    """The distributions ``pip install 'keras-augtune[extras]'`` asks for on ``environment``
    (self-references such as ``keras-augtune[test]; extra == "dev"`` followed)."""
    names: set[str] = set()
    todo, seen = [""] + sorted(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in requirements:
            requirement = Requirement(text)
            if not _applies(requirement, environment, extra):
                continue
            if canonicalize_name(requirement.name) == SELF:
                todo.extend(canonicalize_name(e) for e in requirement.extras)
            else:
                names.add(canonicalize_name(requirement.name))
    return names


def tensorflow_offences(requirements: list[str], extras: list[str]) -> list[str]:
    """``"<extra or (no extra)> on <platform>: <distribution>"`` for each TensorFlow distribution
    that an install without a backend extra would ask for."""
    offences = []
    for extra in [""] + [e for e in extras if canonicalize_name(e) not in BACKEND_EXTRAS]:
        for environment in ENVIRONMENTS:
            names = _installed_names(requirements, environment, {extra} - {""})
            if extra:  # what the extra adds (the base's own offences are reported once, without it)
                names -= _installed_names(requirements, environment, set())
            for name in sorted(names & TENSORFLOW_DISTRIBUTIONS):
                where = f"[{extra}]" if extra else "(no extra)"
                offences.append(f"{where} on {environment['sys_platform']}/{environment['platform_machine']}: {name}")
    return offences


def _pyproject() -> tuple[list[str], list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    requirements = list(project["dependencies"])
    for extra, items in extras.items():
        requirements += [f"{item.split(';')[0]}; ({item.split(';')[1]}) and extra == '{extra}'" if ";" in item
                         else f"{item}; extra == '{extra}'" for item in items]
    return requirements, sorted(extras)


def test_the_old_spec_is_caught():
    """The check sees the requirement that replaced a CUDA TensorFlow (else it proves nothing)."""
    assert tensorflow_offences(OLD_SPEC, ["test"]) == [
        "(no extra) on linux/x86_64: tensorflow-cpu", "(no extra) on linux/aarch64: tensorflow",
        "(no extra) on darwin/arm64: tensorflow", "(no extra) on win32/AMD64: tensorflow-cpu"]
    assert tensorflow_offences(['keras-augtune[tensorflow-cpu]; extra == "test"', 'tensorflow-cpu; extra == "tensorflow-cpu"'],
                               ["test", "tensorflow-cpu"]) == [
        f"[test] on {e['sys_platform']}/{e['platform_machine']}: tensorflow-cpu" for e in ENVIRONMENTS]


def test_installed_metadata_never_replaces_tensorflow():
    try:
        distribution = importlib.metadata.distribution(SELF)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("keras-augtune is not installed (run from a source tree)")
    extras = distribution.metadata.get_all("Provides-Extra") or []
    offences = tensorflow_offences(distribution.requires or [], extras)
    assert not offences, (f"installed {SELF} {distribution.version} would replace the user's TensorFlow "
                          f"(reinstall it if pyproject.toml changed: pip install -e .): {offences}")
    assert BACKEND_EXTRAS <= {canonicalize_name(e) for e in extras}


def test_pyproject_never_replaces_tensorflow():
    requirements, extras = _pyproject()
    assert tensorflow_offences(requirements, extras) == []
    # and each backend extra does install a TensorFlow on each platform (CPU-only users get the small wheel)
    for environment in ENVIRONMENTS:
        cpu = _installed_names(requirements, environment, {"tensorflow-cpu"}) & TENSORFLOW_DISTRIBUTIONS
        gpu = _installed_names(requirements, environment, {"tensorflow"}) & TENSORFLOW_DISTRIBUTIONS
        assert gpu == {"tensorflow"}
        assert cpu == ({"tensorflow-cpu"} if environment["platform_machine"] in ("x86_64", "AMD64") else {"tensorflow"})
