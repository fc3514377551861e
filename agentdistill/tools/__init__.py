"""agentdistill.tools"""
