"""handrecon.utils"""
