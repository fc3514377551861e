"""agentdistill.optimizers"""
