"""handrecon.mesh"""
