"""nat/paths"""
