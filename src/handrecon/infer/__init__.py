"""handrecon.infer"""
