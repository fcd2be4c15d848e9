"""One function per subcommand: typed config in, typed result out; cli/ and pipeline/ call these."""
