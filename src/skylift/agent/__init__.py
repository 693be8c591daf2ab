"""The agent: the daemon on hosts, storages and vRouters that the management node talks to.

VMs belong to a hypervisor driver (skylift.agent.hypervisor), never to the agent process, so
an agent restart or upgrade leaves every VM running.
"""
