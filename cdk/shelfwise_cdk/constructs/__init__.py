"""Constructs for shapes that repeat across stacks, with typed props in the aws-cdk-lib style."""
