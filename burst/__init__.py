"""burst: run benchmark campaigns on EC2 (or on this machine with AMI=local).

Keep this module import-free: the node agent imports ``burst`` with nothing but
the standard library (and boto3 on EC2) installed.
"""

__version__ = "0.3.0"
