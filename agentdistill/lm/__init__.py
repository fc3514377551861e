"""agentdistill.lm"""
