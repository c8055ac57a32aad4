//! The DynamoDB store (issue 3).

/// Placeholder until the DynamoDB implementation lands.
pub struct DynamoStore;
