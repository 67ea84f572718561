"""plantctl: emergency-procedure automation for gas and pump stations.

plantctl is a supervisory controller that runs beside the PLC's own hard-wired
trips. It is NOT a certified safety system (IEC 61511 / IEC 61508); it acts
earlier and more completely than the PLC's last-line trips, and fails safe.
"""

__version__ = "0.1.0"
