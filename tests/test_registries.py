"""Every compression method and probe class in the package is registered under its own name.

A plug-in is one file: a class that is written but not registered would silently never run, so this test
imports every module of compsafe.compress and compsafe.probes and checks each concrete class that names
itself (a ``name``/``config_type`` of its own) against its registry.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import compsafe.compress
import compsafe.probes
from compsafe.compress import METHODS
from compsafe.compress.template import LinearMethod
from compsafe.probes import PROBES, Probe


def subclasses(base: type, package) -> list[type]:
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
    found, todo = [], [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return [cls for cls in found if cls.__module__.startswith(package.__name__) and not inspect.isabstract(cls)]


def test_every_compression_method_is_registered_under_its_config_name() -> None:
    methods = subclasses(LinearMethod, compsafe.compress)
    assert len(methods) >= 8
    for cls in methods:
        name = cls.config_type.method
        assert name and isinstance(METHODS.get(name), cls), f"{cls.__name__} is not registered as {name!r}"


def test_every_probe_that_names_itself_is_registered() -> None:
    probes = [cls for cls in subclasses(Probe, compsafe.probes) if "name" in vars(cls)]
    assert len(probes) >= 10
    for cls in probes:
        assert PROBES.get(cls.name) is cls, f"{cls.__name__} names itself {cls.name!r} but is not registered"
