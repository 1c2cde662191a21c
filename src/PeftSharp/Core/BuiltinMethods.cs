using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.LoKr;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.LoraSb;
using PeftSharp.Methods.LoraXs;
using PeftSharp.Methods.LolDu;
using PeftSharp.Methods.Miss;
using PeftSharp.Methods.Salt;

namespace PeftSharp.Core;

/// <summary>The methods PeftSharp ships. One line per method.</summary>
internal static class BuiltinMethods
{
    public static void Register(MethodRegistry registry)
    {
        registry.Add(new LoraMethod(Methods.Dora.DoraVariant.Factory));
        registry.Add(new LoHaMethod());
        registry.Add(new LoKrMethod());
        registry.Add(new MissMethod());
        registry.Add(new BoneMethod());
        registry.Add(new LoraXsMethod());
        registry.Add(new LoraSbMethod());
        registry.Add(new LolDuMethod());
        registry.Add(new SaltMethod());
    }
}
