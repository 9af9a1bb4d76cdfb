"""What a lab means: what reaches what (expected and probed), which address a name stands for,
and the lab's picture."""
