"""X's batch compliance (issue 24): the complied posts and accounts leave every copy."""
