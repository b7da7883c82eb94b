"""Discovery of the classes a package declares (models, datasets) by their NAME."""
import importlib
import pkgutil
from collections.abc import Iterable


def named_subclasses(package: str, package_path: Iterable[str], base: type) -> dict[str, type]:
    """Import every module of ``package`` and map NAME -> class for all subclasses of ``base``."""
    for module in pkgutil.iter_modules(package_path):
        importlib.import_module(f"{package}.{module.name}")
    found, stack = {}, list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if getattr(cls, "NAME", ""):
            found[cls.NAME] = cls
    return dict(sorted(found.items()))
