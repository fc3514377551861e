"""agentdistill.programs"""
