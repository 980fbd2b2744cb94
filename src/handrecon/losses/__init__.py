"""handrecon.losses"""
