"""agentdistill.tracking"""
