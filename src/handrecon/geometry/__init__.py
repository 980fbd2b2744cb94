"""handrecon.geometry"""
