"""The experiment scripts' tests, apart from the library's (tests/): a package, so that its conftest.py
and modules do not take the names of tests/' own."""
