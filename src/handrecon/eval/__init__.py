"""handrecon.eval: official-semantics metrics (`metrics`) and benchmark submission I/O (`submission`)."""
