"""Every GraphQL document Spyglass sends to Linear: fixed constants, never built from tool input.

Tool arguments only ever reach Linear as *variables*. tests/linear/test_documents.py validates each
document against Linear's published schema (graphql-core), and the documents the client actually sent.
"""

from __future__ import annotations

SEARCH_ISSUES = """
query SpyglassSearchIssues($filter: IssueFilter, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {
    nodes {
      id identifier title priorityLabel updatedAt
      state { name }
      team { key }
      assignee { name }
      labels(first: 10) { nodes { name } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

GET_ISSUE = """
query SpyglassIssue($id: String!) {
  issue(id: $id) {
    id identifier title description url priorityLabel createdAt updatedAt
    state { name }
    team { key }
    assignee { name }
    creator { name }
    project { name }
    labels(first: 20) { nodes { name } }
    history(first: 100) {
      nodes { createdAt actor { name } fromState { name } toState { name } }
      pageInfo { hasNextPage }
    }
    comments(first: 50) {
      nodes { createdAt body user { name } externalUser { name } }
      pageInfo { hasNextPage }
    }
    attachments(first: 20) { nodes { title subtitle url sourceType } }
  }
}
"""

LIST_PROJECTS = """
query SpyglassProjects($filter: ProjectFilter, $first: Int!, $after: String) {
  projects(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {
    nodes {
      name progress targetDate updatedAt url
      status { name }
      lead { name }
      teams(first: 10) { nodes { key } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

# --- used by the linear_write client only ---------------------------------------------------------
TEAM_BY_KEY = """
query SpyglassTeamByKey($key: String!) {
  teams(filter: { key: { eq: $key } }, first: 1) { nodes { id key } }
}
"""

ISSUE_TEAM = """
query SpyglassIssueTeam($id: String!) {
  issue(id: $id) { id identifier team { key } }
}
"""

CREATE_ISSUE = """
mutation SpyglassCreateIssue($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { identifier title url } }
}
"""

ADD_COMMENT = """
mutation SpyglassAddComment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { url createdAt issue { identifier } } }
}
"""

READ_DOCUMENTS = (SEARCH_ISSUES, GET_ISSUE, LIST_PROJECTS)
WRITE_DOCUMENTS = (TEAM_BY_KEY, ISSUE_TEAM, CREATE_ISSUE, ADD_COMMENT)
ALL_DOCUMENTS = {
    "SpyglassSearchIssues": SEARCH_ISSUES, "SpyglassIssue": GET_ISSUE, "SpyglassProjects": LIST_PROJECTS,
    "SpyglassTeamByKey": TEAM_BY_KEY, "SpyglassIssueTeam": ISSUE_TEAM, "SpyglassCreateIssue": CREATE_ISSUE,
    "SpyglassAddComment": ADD_COMMENT,
}


def operation_name(document: str) -> str:
    """The operation name of one of our documents ('query Name(...)' -> 'Name')."""
    head = document.strip().split("(", 1)[0].split("{", 1)[0].split()
    return head[1]
