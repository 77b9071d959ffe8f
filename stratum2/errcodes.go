package stratum2

// Error codes the spec names (STR0_255 error_code fields). Peers compare the
// strings, so they are sent exactly as spelled here.
const (
	// SetupConnection.Error
	ErrCodeUnsupportedFeatureFlags = "unsupported-feature-flags"
	ErrCodeUnsupportedProtocol     = "unsupported-protocol"
	ErrCodeProtocolVersionMismatch = "protocol-version-mismatch"

	// OpenMiningChannel.Error
	ErrCodeUnknownUser         = "unknown-user"
	ErrCodeMaxTargetOutOfRange = "max-target-out-of-range"

	// UpdateChannel.Error (also max-target-out-of-range) and SubmitShares.Error
	ErrCodeInvalidChannelID = "invalid-channel-id"
	ErrCodeStaleShare       = "stale-share"
	ErrCodeDifficultyTooLow = "difficulty-too-low"
	ErrCodeInvalidJobID     = "invalid-job-id"
)

// Protocol numbers for SetupConnection.Protocol.
const (
	ProtocolMining               uint8 = 0
	ProtocolJobDeclaration       uint8 = 1
	ProtocolTemplateDistribution uint8 = 2
)

// SetupConnection flags of the Mining Protocol (bit 0 = least significant).
const (
	FlagRequiresStandardJobs   uint32 = 1 << 0
	FlagRequiresWorkSelection  uint32 = 1 << 1
	FlagRequiresVersionRolling uint32 = 1 << 2

	// SetupConnection.Success flags.
	FlagRequiresFixedVersion     uint32 = 1 << 0
	FlagRequiresExtendedChannels uint32 = 1 << 1
)
