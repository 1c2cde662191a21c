using PeftSharp.Core;

namespace PeftSharp.Methods.Bone;

/// <summary>
/// Registry entry for Bone (PEFT ≤ 0.18 <c>BONE</c>). A separate method rather than an alias of MiSS so that a Bone
/// adapter is saved back as PEFT 0.18 reads it (<c>peft_type</c> BONE, <c>bone_block</c> keys).
/// </summary>
public sealed class BoneMethod : IAdapterMethod
{
    public string Name => "bone";

    public string PeftType => BoneConfig.Type;

    public string Description => "Block-affine adaptation, MiSS's predecessor (PEFT ≤ 0.18); \"bat\" weight-guided r×r blocks (arXiv 2409.15371 v1)";

    public string ParameterCountFormula => "r·d_out (bat: d_out/r blocks of r×r = r·d_out)";

    public Type ConfigType => typeof(BoneConfig);

    /// <summary>PEFT's Bone adapts <c>nn.Linear</c> only.</summary>
    public bool Supports(BaseLayer layer) => layer.Kind == BaseLayerKind.Linear;

    public AdapterLayer CreateLayer(BaseLayer layer) => new BoneLayer(layer);
}
