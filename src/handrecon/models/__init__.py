"""handrecon.models"""
