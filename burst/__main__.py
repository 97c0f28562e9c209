"""python -m burst status|logs|terminate|cleanup JOB"""

from burst.console import exit_with
from burst.ops_cli import main

exit_with(main)
