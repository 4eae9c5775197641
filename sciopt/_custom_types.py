from typing import Any, TypeAlias

from jaxtyping import PyTree


Y: TypeAlias = PyTree[Any]
Args: TypeAlias = PyTree[Any]
