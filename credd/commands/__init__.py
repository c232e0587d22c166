"""One module per subcommand; `cli` imports each only when it runs."""
