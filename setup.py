"""The package list of the ``rosace`` distribution; everything else is in pyproject.toml.

pyproject.toml can either find packages or name them, not both, and ROSACE needs both:
the ``rosace_*`` packages found under ``.`` (the desktop) and ``modules/`` (sub-packages
are added freely), plus ``rosace_resources``: the top-level ``resources/`` folder, whose
place is fixed, shipped inside the wheel under that name. No folder is called
``rosace_resources``, so no package finder can see it; it is mapped here.
"""

from setuptools import find_packages, setup

top = find_packages(".", include=["rosace_*"])
modules = find_packages("modules", include=["rosace_*"])
package_dir = {name: f"modules/{name}" for name in modules if "." not in name}
package_dir["rosace_resources"] = "resources"

setup(packages=[*top, *modules, "rosace_resources"], package_dir=package_dir)
