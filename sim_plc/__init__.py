"""sim_plc: the software PLC that plantctl is proven against.

Process models of the two reference plants (../shared/plant-reference.md section 3),
the PLC-side logic the real PLCs carry, fault injection, and Modbus TCP / OPC-UA
servers built from the same I/O lists the controller reads.
"""
