using PeftSharp.Core;

namespace PeftSharp.Methods.Miss;

/// <summary>MiSS on a Linear layer, with PEFT's names <c>miss_block.&lt;adapter&gt;</c> and <c>miss_dropout.&lt;adapter&gt;</c>.</summary>
public sealed class MissLayer(BaseLayer baseLayer) : ShardSharingLayer(nameof(MissLayer), baseLayer, "miss_block", "miss_dropout")
{
    public override string PeftType => MissConfig.Type;
}
