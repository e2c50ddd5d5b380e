"""The library tests' set-up (tests/conftest.py: 8 forced CPU devices, the compilation cache, the real
data's fixture, the helpers), for the experiments' tests too: pytest loads a folder's conftest.py only
for the tests under it, so this one takes everything from the library's (on the path: pyproject's
`pythonpath`); the tests import its helpers from `conftest` as the library's tests do."""

from conftest import *  # pylint: disable=wildcard-import,unused-wildcard-import  # noqa: F401,F403
