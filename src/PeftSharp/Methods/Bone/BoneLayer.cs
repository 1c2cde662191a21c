using PeftSharp.Core;
using PeftSharp.Methods.Miss;

namespace PeftSharp.Methods.Bone;

/// <summary>Bone on a Linear layer: MiSS's maths under PEFT 0.18's names (<c>bone_block.&lt;adapter&gt;</c>, no dropout).</summary>
public sealed class BoneLayer(BaseLayer baseLayer) : ShardSharingLayer(nameof(BoneLayer), baseLayer, "bone_block", dropoutKey: null)
{
    public override string PeftType => BoneConfig.Type;
}
