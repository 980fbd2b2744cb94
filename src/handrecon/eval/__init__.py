"""handrecon.eval"""
