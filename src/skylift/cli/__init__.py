"""The skylift command line: thin modules that parse, call one function and render."""
