"""commands: one module per subcommand: its flags and what it does with them."""
